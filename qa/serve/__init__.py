"""The HTTP service: the app factory, its routers, middleware and error handlers, and the server."""
