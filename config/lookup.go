package config

// App returns the app named name, or nil.
func (c *Config) App(name string) *App {
	for i := range c.Apps {
		if c.Apps[i].Name == name {
			return &c.Apps[i]
		}
	}
	return nil
}

// Site returns the primary or standby site ("primary" or "standby"), or nil.
func (c *Config) Site(name string) *Site {
	switch name {
	case "primary":
		return &c.Sites.Primary
	case "standby":
		return &c.Sites.Standby
	}
	return nil
}
