"""Seller payouts through Stripe Connect: onboarding, transfers of each delivered order, refunds reversed."""
