"""HTTP and WebSocket transports: Flask blueprints over the runtime."""
