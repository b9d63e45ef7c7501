"""The outside of Fengqiao: the HTTP API (FastAPI) and the command-line interface."""
