"""The `registrar` operator CLI (runs only in the CLI; entry point `handlers.cli.app:main`)."""
