"""The HTTP boundary to Doccano: token login, retries (urllib3 ``Retry``), one error type."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from clinical_nlp.errors import DoccanoError


def retry_policy(retries: int) -> Retry:
    """Connection failures are retried for every method (nothing was sent); 502/503/504 only
    for GET and DELETE (idempotent); backoff 0.5 s, doubling."""
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "DELETE"}),
        backoff_factor=0.5,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


class DoccanoHttp:
    """A token-authenticated session per thread; retries by urllib3's ``Retry`` on an ``HTTPAdapter``."""

    def __init__(self, url: str, username: str, password: str, *, retries: int = 3, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.username = username
        self.retries = retries
        self.timeout = timeout
        self._local = threading.local()
        resp = self._raw("POST", "/v1/auth/login/", json={"username": username, "password": password}, auth=False)
        if resp.status_code != 200:
            raise DoccanoError(f"{self.url}: login as {username!r} failed (HTTP {resp.status_code}): {resp.text[:200]}")
        self.token = resp.json().get("key")
        # token auth only: a session cookie would make Django enforce CSRF on every write
        self._session().cookies.clear()
        if not self.token:
            raise DoccanoError(f"{self.url}: login as {username!r} returned no token")

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            adapter = HTTPAdapter(max_retries=retry_policy(self.retries), pool_maxsize=16)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            self._local.s = s
        return s

    def _raw(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        full = self.url + path
        session = self._session()
        try:
            resp = session.request(method, full, headers=headers, timeout=self.timeout, **kw)
        except requests.ConnectionError as exc:
            raise DoccanoError(f"Doccano server at {self.url} is unreachable ({method} {path}): {exc}") from None
        except requests.RequestException as exc:
            raise DoccanoError(f"Doccano request {method} {full} failed: {exc}") from None
        finally:
            session.cookies.clear()
        return resp

    def request(self, method: str, path: str, *, ok: Sequence[int] = (200, 201, 204), **kw: Any) -> Any:
        resp = self._raw(method, path, **kw)
        if resp.status_code not in ok:
            raise DoccanoError(
                f"Doccano {method} {self.url}{path} as {self.username!r} answered HTTP {resp.status_code}: {resp.text[:300]}"  # noqa: E501
            )
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def get_all(self, path: str, params: Mapping[str, Any] | None = None, page: int = 500) -> Iterator[dict[str, Any]]:
        """Follow LimitOffset pagination."""
        offset = 0
        while True:
            data = self.request("GET", path, params={**(params or {}), "limit": page, "offset": offset})
            if isinstance(data, list):
                yield from data
                return
            yield from data["results"]
            offset += page
            if not data.get("next"):
                return
