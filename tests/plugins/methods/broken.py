"""A plugin file that fails to import: it must be listed as broken, not break discovery."""
import a_module_that_does_not_exist  # noqa: F401
