"""Platform service: the whole platform's health behind `GET /api/v1/health`."""
