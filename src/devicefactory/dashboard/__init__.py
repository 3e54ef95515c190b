"""The Factory Actions dashboard: server-rendered pages under /dashboard over the same services as the API."""
