"""The few lxml helpers the XML writers (RSS, Atom, OPML) share, and their namespaces."""

from __future__ import annotations

from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    """A child ``tag`` of ``parent`` with ``text`` and attributes, appended last."""
    element = etree.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def document(root: etree._Element, stylesheet: str | None) -> bytes:
    """The whole document as UTF-8 bytes with an XML declaration, indented, preceded by an
    ``<?xml-stylesheet?>`` instruction when ``stylesheet`` (an href) is given."""
    if stylesheet is not None:
        root.addprevious(
            etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{stylesheet}"')
        )
    body: bytes = etree.tostring(
        root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return body
