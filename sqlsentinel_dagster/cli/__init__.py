"""The ``sqlsentinel`` command. ``main`` wires the commands; no command imports it."""
