package imap

import (
	"sort"
	"strings"
)

type IDData struct {
	Name        string
	Version     string
	OS          string
	OSVersion   string
	Vendor      string
	SupportURL  string
	Address     string
	Date        string
	Command     string
	Arguments   string
	Environment string

	// Other holds fields outside RFC 2971's list (section 3.3), by
	// lower-case name, such as a server's "revision". (certmail patch)
	Other map[string]string
}

// idFields are the fields of RFC 2971 section 3.3, in its order.
var idFields = []string{"name", "version", "os", "os-version", "vendor", "support-url", "address", "date", "command", "arguments", "environment"}

func (data *IDData) field(name string) *string {
	switch name {
	case "name":
		return &data.Name
	case "version":
		return &data.Version
	case "os":
		return &data.OS
	case "os-version":
		return &data.OSVersion
	case "vendor":
		return &data.Vendor
	case "support-url":
		return &data.SupportURL
	case "address":
		return &data.Address
	case "date":
		return &data.Date
	case "command":
		return &data.Command
	case "arguments":
		return &data.Arguments
	case "environment":
		return &data.Environment
	}
	return nil
}

// Set sets a field by name; field names are case-insensitive (RFC 2971
// section 3.3). (certmail patch)
func (data *IDData) Set(name, value string) {
	name = strings.ToLower(name)
	if p := data.field(name); p != nil {
		*p = value
		return
	}
	if data.Other == nil {
		data.Other = make(map[string]string)
	}
	data.Other[name] = value
}

// Pairs lists the fields that are set: RFC 2971's in its order, then the
// others sorted by name. (certmail patch)
func (data *IDData) Pairs() [][2]string {
	if data == nil {
		return nil
	}
	var pairs [][2]string
	for _, name := range idFields {
		if v := *data.field(name); v != "" {
			pairs = append(pairs, [2]string{name, v})
		}
	}
	others := make([]string, 0, len(data.Other))
	for name := range data.Other {
		others = append(others, name)
	}
	sort.Strings(others)
	for _, name := range others {
		pairs = append(pairs, [2]string{name, data.Other[name]})
	}
	return pairs
}
