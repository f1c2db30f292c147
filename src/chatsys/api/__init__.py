"""The HTTP API: app factory, routers, schemas, error mapping. Depends on the domain only."""
