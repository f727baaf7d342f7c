"""Users and API tokens managed over the API and UI, and each user's own account."""
