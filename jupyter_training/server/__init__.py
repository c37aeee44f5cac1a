"""The Jupyter server extension: REST and WebSocket access to jobs for the sidebar."""
