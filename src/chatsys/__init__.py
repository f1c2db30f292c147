"""chatsys: an async-native multi-agent task and chat service."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatsys")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
