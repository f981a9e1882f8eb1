"""The one scrubber: whole secrets, fragments of 8+ characters, every encoding."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.scrubbing import MIN_FRAGMENT, REDACTED, Scrubber
from tests.leaks import FRAGMENT, encodings, leaked

KEY = 'SG.Rk+7/q&W<2"xZ=pL9+mT/aB&c<Y"d'
TOKEN = 'xoxb-17+a/B&c<D"e-Fg+h/I&j<K"l'
scrubber = Scrubber([KEY, TOKEN])

ENCODERS = {
    "raw": lambda s: s,
    "quote": quote,
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote_plus": quote_plus,
    "quote_plus lower-case hex": lambda s: (
        quote_plus(s).replace("%2B", "%2b").replace("%2F", "%2f")
    ),
    "JSON": lambda s: json.dumps(s)[1:-1],
    "JSON \\u escapes": lambda s: "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in s),
    "HTML": html.escape,
    "HTML numeric": lambda s: "".join(c if c.isalnum() else f"&#{ord(c)};" for c in s),
    "HTML hex": lambda s: "".join(c if c.isalnum() else f"&#x{ord(c):X};" for c in s),
    "URL in HTML": lambda s: html.escape(quote(s)),
    "HTML in JSON": lambda s: json.dumps(html.escape(s))[1:-1],
    "double URL": lambda s: quote(quote(s, safe=""), safe=""),
}


def test_the_threshold_is_the_one_the_leak_check_uses():
    assert MIN_FRAGMENT == FRAGMENT


@pytest.mark.parametrize("encode", ENCODERS.values(), ids=ENCODERS.keys())
@pytest.mark.parametrize("secret", [KEY, TOKEN], ids=["key", "token"])
def test_a_whole_secret_in_any_encoding_is_removed_and_the_text_around_it_kept(secret, encode):
    text = f"Invalid request: api_key={encode(secret)}&user=acme-eu"
    scrubbed = scrubber.scrub(text)
    assert scrubbed == f"Invalid request: api_key={REDACTED}&user=acme-eu"


@pytest.mark.parametrize("encode", ENCODERS.values(), ids=ENCODERS.keys())
@pytest.mark.parametrize("start", [0, 5, len(KEY) - MIN_FRAGMENT])
def test_a_fragment_of_eight_characters_is_removed(start, encode):
    fragment = KEY[start : start + MIN_FRAGMENT]
    scrubbed = scrubber.scrub(f"preview: <p>{encode(fragment)}")
    assert scrubbed == f"preview: <p>{REDACTED}"


def test_seven_characters_stay_and_are_not_enough_to_matter():
    text = f"prefix {KEY[:7]} and {KEY[10:17]}"
    assert scrubber.scrub(text) is text


def test_a_preview_cut_in_the_middle_of_an_echoed_key_leaks_nothing():
    """The issue: an HTML page quoting the key ~100 characters in, cut at 120."""
    page = "<html><body>" + "x" * 88 + f"api_key={html.escape(KEY)} in the request</body></html>"
    preview = page[:120]
    assert leaked(KEY, preview)
    assert not leaked(KEY, scrubber.scrub(preview))
    assert not leaked(KEY, scrubber.scrub(page)[:120])


def test_text_without_secrets_is_returned_as_it_is():
    text = "sendgrid customer.limit task=retrieve user=globex failed: SG. xoxb- %2B &amp; \\u0026"
    assert scrubber.scrub(text) is text


def test_numbers_dates_and_public_ids_inside_a_token_are_not_scrubbed():
    """A Slack token holds its workspace's and bot's numeric IDs; a SendGrid balance
    or a timestamp that happens to equal eight of those digits is not a leak."""
    token = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
    numbers = Scrubber([token, "test-signing-secret-0123456789"])
    body = '[{"credit": "17653672", "credit_remain": "12345678", "last_reset": "2026-11-23"}]'
    assert numbers.scrub(body) is body
    # The lettered part goes; the digits left after it (5 of a public ID) are not enough.
    assert numbers.scrub(f"token={token[:16]}") == f"token={REDACTED}72481"
    # The secret part of the token goes; of the IDs before it, only digits may stay.
    assert numbers.scrub(token[5:]) == f"17653672481-19874{REDACTED}"
    assert not leaked(token, numbers.scrub(token))


def test_secrets_shorter_than_the_fragment_are_removed_whole_and_tiny_ones_ignored():
    short = Scrubber(["demo-k", "abc"])
    assert short.scrub("key demo-k, key demo-, abc") == f"key {REDACTED}, key demo-, abc"
    assert Scrubber([]).scrub(KEY) == KEY


def test_adjacent_and_overlapping_hits_become_one_redaction():
    assert scrubber.scrub(KEY + TOKEN + quote(KEY)) == REDACTED


def test_bytes_are_scrubbed_and_other_encodings_pass_through():
    body = f'<?xml version="1.0" encoding="ISO-8859-1"?><e>caf\xe9 {html.escape(KEY)}</e>'
    content = body.encode("latin-1")
    assert scrubber.scrub_bytes(
        content
    ) == f'<?xml version="1.0" encoding="ISO-8859-1"?><e>caf\xe9 {REDACTED}</e>'.encode("latin-1")
    clean = b'{"credit": "20", "name": "\xff\xfe"}'
    assert scrubber.scrub_bytes(clean) is clean


def test_repr_shows_no_secret():
    assert KEY not in repr(scrubber)
    assert "2 secret" in repr(scrubber)


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    before=printable,
    after=printable,
    start=st.integers(0, len(KEY) - MIN_FRAGMENT),
    length=st.integers(MIN_FRAGMENT, len(KEY)),
    encoder=st.sampled_from(sorted(ENCODERS)),
)
def test_no_fragment_survives_whatever_surrounds_it(before, after, start, length, encoder):
    fragment = KEY[start : start + length]
    encoded = ENCODERS[encoder](fragment)
    scrubbed = scrubber.scrub(before + encoded + after)
    assert encoded not in scrubbed
    assert not leaked(KEY, scrubbed)


def test_every_form_the_leak_check_knows_is_scrubbed():
    for i in range(len(KEY) - MIN_FRAGMENT + 1):
        for form in encodings(KEY[i : i + MIN_FRAGMENT]):
            assert scrubber.scrub(f"({form})") == f"({REDACTED})", form


def test_a_stray_url_escape_before_an_html_escaped_fragment_does_not_hide_it():
    """Found by the property above: `%0` + `7/q&amp;…` decoded all at once gives `\\x07/q&…`,
    losing the fragment's first character; each encoding is also undone on its own."""
    encoded = html.escape(KEY[6:14])
    assert encoded.startswith("7/q&amp;")
    scrubbed = scrubber.scrub("%0" + encoded)
    assert encoded not in scrubbed
    assert not leaked(KEY, scrubbed)
