"""The service's commands: `python -m commands.<name>` serves, migrates or checks the API."""
