"""Domain errors. Each carries a message a user can act on; the CLI prints it without a traceback."""


class DigestError(Exception):
    """Base class for every error a user can cause and fix."""


class ConfigError(DigestError):
    """The configuration file or environment is invalid."""


class SourceError(DigestError):
    """An ingestion source could not be read at all (unreachable, not a feed, unreadable file)."""


class NotFound(DigestError):
    """A named thing (list, subscriber, digest, feed) does not exist."""


class InvalidInput(DigestError):
    """A value given by a user (an option, a row, a form field) is not acceptable."""


class TokenError(DigestError):
    """A signed token is forged, damaged, for another purpose, or expired."""


def describe_error(e: BaseException) -> str:
    """One line for a failure: a domain error's own message, else the exception's type and
    message (an unexpected error is a bug: callers log its traceback at debug level)."""
    if isinstance(e, DigestError):
        return str(e)
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
