"""Assistant: conversation, answerers, citations, service facade, CLI and API."""
