package pgque

// SetDirectMin makes c read pieces of n messages or more straight from the
// event tables (receive_query), so that tests can send small pieces that way.
func SetDirectMin(c *Client, n int) { c.directMin = n }
