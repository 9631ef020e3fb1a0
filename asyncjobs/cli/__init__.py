"""The ``asyncjobs`` command: run, check, status, cancel, demo and emulator.

Conventions follow the AWS CLI: ``--endpoint-url``, ``--region``, ``--profile``,
``--output json|table``, ``--query`` (JMESPath over the JSON document), ``--debug``,
``--no-verify-ssl``, and botocore's usual credential chain. Global options may be
given before or after the subcommand.

A module per command (``run``, ``check``, ``status``, ``cancel``, ``demo``; ``emulator``
lives with the emulator), and one per concern they share:

- ``app``: the command group and :func:`main`, the console script;
- ``options``: the global options and ``--journal``;
- ``logs``: logging set-up, the only place in the library that configures logging;
- ``output``: result documents (JSON or table), messages and pasteable hints;
- ``errors``: exit codes, and how an error becomes one line and a code;
- ``signals``: what SIGINT and SIGTERM do (the library installs no handlers);
- ``session``: the AWS session and its credentials;
- ``driver``: one run of a campaign, from opening the journal to the summary.
"""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
