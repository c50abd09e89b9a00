"""Adapters that plug contextkit into other frameworks.

Each adapter lives in its own module and imports its framework only when that module is
imported, so `import contextkit` never needs them:

- `contextkit.integrations.langchain`: `ContextKitChatMessageHistory`, a LangChain
  `BaseChatMessageHistory` backed by a contextkit thread (`pip install "contextkit[langchain]"`).
"""

__all__: list[str] = []
