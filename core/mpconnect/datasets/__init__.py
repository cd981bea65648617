"""The Mixpanel Datasets API three ways: embedded store, HTTP client, local server."""
