"""Emails about orders and reports: templates (`emails`) and what is sent when (`service`)."""
