"""The browser console: the built single-page app and its gRPC-Web gateway to the services."""
