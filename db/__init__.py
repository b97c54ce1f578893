"""Our own database: users and links from prompts to Phoenix traces and evaluations."""
