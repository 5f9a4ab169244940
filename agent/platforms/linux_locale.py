"""The system language on Linux: make the glibc locale exist (locale-gen or localedef), then `localectl set-locale`."""

import shutil
from pathlib import Path
from typing import Any

from agent import process
from agent.errors import HandlerError
from agent.files import write_atomically
from agent.platforms.linux_tools import LinuxTools

DEFAULT_COUNTRIES = {
    "cs": "CZ",
    "da": "DK",
    "de": "DE",
    "el": "GR",
    "en": "US",
    "es": "ES",
    "fi": "FI",
    "fr": "FR",
    "hu": "HU",
    "it": "IT",
    "ja": "JP",
    "ko": "KR",
    "nb": "NO",
    "nl": "NL",
    "pl": "PL",
    "pt": "PT",
    "ro": "RO",
    "ru": "RU",
    "sv": "SE",
    "tr": "TR",
    "uk": "UA",
    "zh": "CN",
}
"""The locale a bare language becomes: glibc has no `de.UTF-8`, only a language in a country."""

LOCALE_LIST_BYTES = 1024 * 1024
"""`locale -a` lists every compiled locale, several hundred with Debian's locales-all."""
GENERATE_TIME_FACTOR = 5
"""locale-gen compiles every locale listed in locale.gen again, which takes longer than one tool call may."""


def posix_locale(language: str) -> str:
    """The glibc locale for a language: `de-DE`, `de_DE` and `de_DE.UTF-8` become `de_DE.UTF-8`, `de` too."""
    name = language.removesuffix(".UTF-8").replace("-", "_")
    if "_" not in name:
        country = DEFAULT_COUNTRIES.get(name)
        if country is None:
            raise HandlerError(
                f"{language!r} names no country and there is no default locale for it here: send language_COUNTRY "
                f"(e.g. {name}_{name.upper()[:2]})"
            )
        name = f"{name}_{country}"
    return f"{name}.UTF-8"


def listed_form(locale: str) -> str:
    """A locale as `locale -a` writes it: the codeset lower-case without dashes (`de_DE.UTF-8` is `de_DE.utf8`)."""
    name, _, codeset = locale.partition(".")
    return f"{name}.{codeset.lower().replace('-', '')}" if codeset else name


def enable_in_locale_gen(text: str, entry: str) -> str:
    """locale.gen's `text` with `entry` (`de_DE.UTF-8 UTF-8`) uncommented, or added at the end."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if " ".join(line.lstrip("#").split()) == entry:
            lines[index] = entry
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, entry]) + "\n"


class LinuxLocale(LinuxTools):
    """The system locale, as localectl keeps it in /etc/locale.conf (Debian: /etc/default/locale)."""

    async def set_language(self, language: str) -> dict[str, Any]:
        """Generate the locale if `locale -a` lacks it, check that it exists now, then set it as LANG.

        Sessions started from now on use it; running ones keep theirs. A locale glibc cannot build (`xx_YY`) fails,
        with locale.gen as it was.
        """
        locale = posix_locale(language)
        generated = not await self._available(locale)
        if generated:
            await self._generate(locale)
        await self.tool("localectl", "set-locale", f"LANG={locale}")
        return {"locale": locale, "generated": generated}

    async def _available(self, locale: str) -> bool:
        listed = await process.check(("locale", "-a"), timeout=self.tool_timeout, output_limit=LOCALE_LIST_BYTES)
        return listed_form(locale) in {listed_form(line.strip()) for line in listed.stdout_tail.splitlines()}

    async def _generate(self, locale: str) -> None:
        """Debian's way where locale-gen is installed (the locale survives the next locales upgrade, which rebuilds
        only what locale.gen lists), else localedef."""
        if shutil.which("locale-gen") is None:
            name = locale.removesuffix(".UTF-8")
            await self.tool("localedef", "-i", name, "-f", "UTF-8", locale)
            if not await self._available(locale):
                raise HandlerError(f"{locale} does not exist after localedef: glibc has no such locale")
            return
        path = self.etc_dir / "locale.gen"
        previous = _read(path)
        write_atomically(path, enable_in_locale_gen(previous or "", f"{locale} UTF-8").encode())
        try:
            await self.tool("locale-gen", limit_s=self.tool_timeout * GENERATE_TIME_FACTOR)
            if not await self._available(locale):
                raise HandlerError(f"{locale} does not exist after locale-gen: glibc has no such locale")
        except BaseException:
            # A line locale-gen cannot build would make every later run complain: put the file back as it was.
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                write_atomically(path, previous.encode())
            raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise HandlerError(f"cannot read {path}: {err.strerror or err}") from err
