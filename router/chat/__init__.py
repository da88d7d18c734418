"""The OpenAI-compatible surface: ``/api/v1/chat/completions`` (``model: "auto"``) and ``/api/v1/models``."""
