"""Message templates: Jinja2 texts in Vietnamese and English, chosen by her preferred language.

The catalogue is a TOML file (``templates.toml``), validated at start: every template has a text
for every language, and every text compiles. Rendering is strict: an unknown variable is an error.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from shared.vntext import nfc

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


class TemplateConfigError(ValueError):
    """The template file is invalid; the message names the file and the key."""


class UnknownTemplate(LookupError):
    pass


class Templates:
    def __init__(self, texts: dict[str, dict[str, str]], *, source: str = "templates") -> None:
        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._compiled = {}
        for name, by_lang in texts.items():
            for lang in LANGUAGES:
                if lang not in by_lang:
                    raise TemplateConfigError(
                        f"{source}: {name}.{lang}: missing (every template needs vi and en)"
                    )
            for lang, text in by_lang.items():
                if lang not in LANGUAGES:
                    raise TemplateConfigError(
                        f"{source}: {name}.{lang}: unknown language; one of {LANGUAGES}"
                    )
                try:
                    self._compiled[(name, lang)] = env.from_string(nfc(text))
                except TemplateError as exc:
                    raise TemplateConfigError(f"{source}: {name}.{lang}: {exc}") from None
        self.names = frozenset(texts)
        # Renderings repeat (same template, language and appointment): keep them.
        self._rendered: dict[tuple[str, str, tuple[tuple[str, Any], ...]], str] = {}

    @classmethod
    def load(cls, path: Path) -> Templates:
        try:
            raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TemplateConfigError(f"{path}: cannot read the template file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise TemplateConfigError(f"{path}: not valid TOML: {exc}") from None
        version = raw.pop("version", None)
        if version != 1:
            raise TemplateConfigError(f"{path}: version: unsupported template file version {version!r}")
        texts: dict[str, dict[str, str]] = {}
        for name, table in raw.items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise TemplateConfigError(f"{path}: {name}: expected a table of texts per language")
            texts[name] = table
        return cls(texts, source=str(path))

    def render(self, name: str, language: str, **params: Any) -> str:
        """The text of template ``name`` in ``language`` (Vietnamese when we have no such language)."""
        lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
        try:
            template = self._compiled[(name, lang)]
        except KeyError:
            raise UnknownTemplate(name) from None
        params.setdefault("appointment", None)
        key = (name, lang, tuple(sorted(params.items())))
        try:
            return self._rendered[key]
        except KeyError:
            pass
        except TypeError:  # unhashable parameters: render without the cache
            return " ".join(template.render(**params).split())
        text = " ".join(template.render(**params).split())
        if len(self._rendered) < 10_000:
            self._rendered[key] = text
        return text


@functools.cache
def default_templates() -> Templates:
    """The catalogue shipped with the service (``templates.toml`` beside this module)."""
    return Templates.load(Path(__file__).resolve().parent / "templates.toml")
