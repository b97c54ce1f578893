"""Services the pages call: Phoenix, auth, users, cache."""
