"""Offline corpora: speech, music and sound with labels and captions, built from Debian packages by one command.

``dashtok data build OUT`` (see ``build.py``). This subpackage imports the core; the core never imports it.
"""
