"""Privacy suite (a package so that its conftest does not shadow tests/interop/conftest.py
when both folders run in one pytest invocation)."""
