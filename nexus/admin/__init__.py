"""The admin console's API: users, payments and their webhook trail, refunds, numbers."""
