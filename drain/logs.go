package drain

// MaxLoggedNameBytes bounds a user name (an app's name, or anything a
// sender puts there) in logs and on the status pages.
const MaxLoggedNameBytes = 64
