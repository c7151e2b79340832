"""The platform's components, one ComponentResource per concern, grouped by domain: `ls components`."""
