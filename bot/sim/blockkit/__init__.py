"""Block Kit → HTML, for the demo workbench (a Slack-like page).

Faithful enough that every card rollbot builds renders without placeholders, and safe:
every piece of text is HTML-escaped, only http/https/mailto URLs become links (and only
http/https images load), and malformed input never raises.

    render_mrkdwn(text, users=, channels=, groups=)     Slack mrkdwn → escaped inline HTML
    render_blocks(blocks, …, message_ts=)               a list of blocks
    render_message(message, …, thread_count=)           one message as the sim records it
    render_view(view, …)                                a modal (views.open) or a home tab
    UNKNOWN_CLASS                                       the class of the placeholder of an
                                                        unknown block or element
    CSS                                                 a small Slack-like stylesheet

Buttons render as `<button class="bk-button bk-primary|bk-danger" data-action-id=…
data-value=… data-block-id=… data-message-ts=…>`; a confirm dialog goes into
`data-confirm-*` attributes (plain text) and a `<template class="bk-confirm">` right
after the button (rendered HTML), for the page's script to show. URL buttons are links
(`target=_blank rel=noopener`).

The package, by responsibility (each module imports only the ones above it):

    markup      escaping, attributes, safe URLs, lenient readers of untrusted JSON, the
                placeholder (`UNKNOWN_CLASS`)
    emoji       the `:shortcode:` table (`EMOJI`)
    mrkdwn      `render_mrkdwn`, mentions resolved through the name maps
    elements    text objects; buttons and confirms, selects, overflow menus, pickers,
                inputs, radio buttons and checkboxes, images
    rich_text   the elements of a `rich_text` block
    blocks      `render_blocks`: one element per block
    surfaces    `render_message` and `render_view` (a modal or a home tab)
    css         `CSS`
"""

from __future__ import annotations

from bot.sim.blockkit.blocks import render_blocks
from bot.sim.blockkit.css import CSS
from bot.sim.blockkit.emoji import EMOJI
from bot.sim.blockkit.markup import UNKNOWN_CLASS
from bot.sim.blockkit.mrkdwn import render_mrkdwn
from bot.sim.blockkit.surfaces import render_message, render_view

__all__ = [
    "CSS",
    "EMOJI",
    "UNKNOWN_CLASS",
    "render_blocks",
    "render_message",
    "render_mrkdwn",
    "render_view",
]
