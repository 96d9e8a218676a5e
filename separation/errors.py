"""User-facing errors: one clear sentence, no traceback, non-zero exit."""
from __future__ import annotations


class UserError(Exception):
    """An error the user caused and can fix (bad file, wrong checkpoint, no network).

    Command-line entry points catch it, print ``error: <message>`` on one line
    and exit with status 2, so a user never sees a traceback for their own input.
    """


class AudioError(UserError):
    """Unreadable, empty or non-finite audio."""


class CheckpointError(UserError):
    """A checkpoint that cannot be found, verified or loaded strictly."""


def exit_on_user_error(main):
    """Decorate a CLI ``main`` so a :class:`UserError` becomes one line and exit code 2."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
