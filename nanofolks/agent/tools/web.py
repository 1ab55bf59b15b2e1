"""web_fetch: read a web page as text. http(s) only, size and time limits, and no requests to
loopback, private or link-local addresses unless `tools.webFetchAllowPrivate` is set.

The name is resolved once, every address it has is checked, and the request connects to the checked
address itself (the Host header and the TLS name stay the host's), at every redirect: a DNS answer that
changes between the check and the connection (rebinding) cannot lead it elsewhere. Addresses that embed
an IPv4 one (`[::127.0.0.1]`, `::ffff:10.0.0.1`, 6to4, NAT64) are judged by the IPv4 address."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params

MAX_REDIRECTS = 5
USER_AGENT = "Mozilla/5.0 (compatible; nanofolks web_fetch)"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")


async def web_fetch(ctx: ToolContext, args: dict[str, Any]) -> str:
    settings = ctx.config.tools
    try:
        async with asyncio.timeout(settings.web_fetch_timeout):
            return await _fetch(args["url"], settings.web_fetch_max_bytes, settings.web_fetch_timeout,
                                settings.web_fetch_allow_private, args.get("headers") or {})
    except TimeoutError:
        raise ToolError(f"fetching {args['url']} took longer than {settings.web_fetch_timeout:g} s") from None


async def _fetch(url: str, max_bytes: int, timeout: float, allow_private: bool,
                 headers: dict[str, str] | None = None) -> str:
    """`headers` (often a credential, resolved from {{name}} just before) go only to the first URL's host."""
    import httpx

    host = urlsplit(url).netloc
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = await check_url(url, allow_private)
            try:
                extra = headers if headers and urlsplit(url).netloc == host else None
                request = _pinned_request(client, url, address, extra)
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    body, cut = await _read(response, max_bytes)
                    return _render(url, response, body, cut, max_bytes)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                raise ToolError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from None
    raise ToolError(f"more than {MAX_REDIRECTS} redirects from {url}")


def _pinned_request(client: Any, url: str, address: str | None, headers: dict[str, str] | None = None) -> Any:
    """A GET for `url` that connects to `address` (None: let httpx resolve, private addresses allowed)."""
    import httpx

    target = httpx.URL(url)
    if address is None:
        return client.build_request("GET", target, headers=headers)
    return client.build_request("GET", target.copy_with(host=address),
                                headers={**(headers or {}), "Host": target.netloc.decode()},
                                extensions={"sni_hostname": target.raw_host.decode()})


async def check_url(url: str, allow_private: bool) -> str | None:
    """The address to connect to, once the URL and every address its host resolves to passed the checks;
    None when private addresses are allowed (nothing to pin)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {url!r}")
    if not parts.hostname:
        raise ToolError(f"{url!r} has no host")
    if allow_private:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError, UnicodeError) as exc:
        raise ToolError(f"cannot resolve {parts.hostname}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]  # drop a scope id
    for address in addresses:
        if is_forbidden(address):
            raise ToolError(
                f"{parts.hostname} is {address}, a loopback, private or link-local address: web_fetch only "
                "reaches public addresses (tools.webFetchAllowPrivate allows others)"
            )
    if not addresses:
        raise ToolError(f"cannot resolve {parts.hostname}: no address")
    return str(addresses[0])


def is_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_forbidden(embedded)
    return not address.is_global or address.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible `::a.b.c.d`, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    value = int(address)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, deprecated "IPv4-compatible" (not :: or ::1)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


async def _read(response: Any, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False


def _render(url: str, response: Any, body: bytes, cut: bool, max_bytes: int) -> str:
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if (ctype and not any(t in ctype for t in _TEXT_TYPES)) or b"\x00" in body[:4096]:
        raise ToolError(f"{url} is not text ({ctype or 'binary'}, HTTP {response.status_code})")
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if ctype in ("text/html", "application/xhtml+xml") or (not ctype and "<html" in text[:1000].lower()):
        text = html_to_text(text)
    if response.status_code >= 400:
        raise ToolError(f"HTTP {response.status_code} from {url}: {text[:300]}")
    note = f"\n[... cut at {max_bytes} bytes]" if cut else ""
    return f"{url} (HTTP {response.status_code}, {ctype or 'unknown type'})\n\n{text.strip()}{note}"


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg"}  # not "head": its end tag is optional
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "header", "footer", "pre", "blockquote", "table", "ul", "ol", "hr", "title", "main", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self.skipping += 1
        if tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP and self.skipping:
            self.skipping -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable text of a page, roughly: no scripts or styles, one line per block, spaces collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = parser.title.strip()
    return f"# {title}\n\n{text}" if title else text


WEB_FETCH_TOOL = Tool(
    "web_fetch",
    "Fetch a public web page (http or https) and return its readable text.",
    params({"url": {"type": "string", "description": "The full http(s) URL."},
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Extra request headers; write a secret as {{name}}, e.g. "
                                       "{\"Authorization\": \"Bearer {{github_token}}\"}."}}, ["url"]),
    web_fetch,
    uses_secrets=("headers",),
)
