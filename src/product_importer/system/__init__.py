"""The fleet as the application sees it: worker heartbeats, queue depths and GET /api/system."""
