"""Pure builders of Dash components; none of them does I/O."""
