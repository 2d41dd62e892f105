"""Development tools shipped with the package: fake servers for tests, demo and bench."""
