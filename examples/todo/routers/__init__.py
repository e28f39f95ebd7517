"""The app's routers, one file per resource; each is built from the app's `Services`."""
