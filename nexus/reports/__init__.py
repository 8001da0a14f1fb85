"""Sales reports for store owners, kept in each user's report history."""
