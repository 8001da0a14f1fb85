"""Card payments through Stripe PaymentIntents, settled by Stripe's signed webhook."""
