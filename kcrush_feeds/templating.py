"""The one Jinja environment factory: the editor's templates first, then the built-in ones.

Every template set of the package (the digest's mails in ``templates/email``, the ``serve``
pages and mails in ``templates/web``) is loaded through ``environment``: a configured
override directory is searched before the package's directory, so an editor may replace a
single file and keep the rest. Where the directory comes from (and whether it must exist)
stays with the caller that owns the config key.

Templates come from the config file (``digest.subject``) and from an editor's directory,
so they are rendered in Jinja's sandbox: ``{{ cycler.__init__.__globals__.os }}`` and the
like raise ``jinja2.sandbox.SecurityError`` instead of reaching Python's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

PACKAGE = "kcrush_feeds"


def loader(package_dir: str, overrides: Sequence[Path] = ()) -> jinja2.BaseLoader:
    """``overrides`` in order, then ``kcrush_feeds/<package_dir>``: the first match wins."""
    return jinja2.ChoiceLoader(
        [
            *(jinja2.FileSystemLoader(str(directory)) for directory in overrides),
            jinja2.PackageLoader(PACKAGE, package_dir),
        ]
    )


def by_extension(*extensions: str) -> Callable[[str | None], bool]:
    """Autoescape only templates whose names end in one of ``extensions`` (e.g. "html")."""
    return jinja2.select_autoescape(list(extensions))


def environment(
    templates: jinja2.BaseLoader,
    *,
    autoescape: bool | Callable[[str | None], bool],
    strict: bool = True,
    keep_trailing_newline: bool = False,
    auto_reload: bool = True,
) -> jinja2.Environment:
    """An environment over ``templates`` (from ``loader``), with block tags that leave no
    blank lines (``trim_blocks``, ``lstrip_blocks``).

    ``strict``: an undefined name is an error (``StrictUndefined``), not an empty string.
    ``auto_reload=False`` reads each template once: no stat() of the file per render.
    Sandboxed: a template can use the values it is given, not Python's internals.
    """
    return SandboxedEnvironment(
        loader=templates,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=keep_trailing_newline,
        auto_reload=auto_reload,
    )
