package catalog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Applications and subscriptions: credentials by hash or client id, and
// plans.

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (b *builder) application(d *Document) {
	a := d.Object.(*Application)
	spec := &a.Spec
	ok := true
	c := &CompiledApplication{Name: d.Name, DisplayName: spec.DisplayName, Owner: spec.Owner, Pos: d.Pos, Doc: a}
	if spec.Policy != "" {
		c.Policy = b.policyRef(d, "spec.policy", spec.Policy, ScopeApplication)
		ok = ok && c.Policy != nil
	}
	for i, oc := range spec.OAuthClients {
		field := "spec.oauthClients[" + strconv.Itoa(i) + "]"
		kt, err := ParseKeyType(oc.KeyType)
		if err != nil {
			b.add(d, field+".keyType", err)
			ok = false
		}
		switch other, dup := b.snap.clients[oc.ClientID]; {
		case oc.ClientID == "":
			b.add(d, field+".clientId", errRequired)
			ok = false
		case dup && other.app == c:
			b.addf(d, field+".clientId", "OAuth client %q is listed twice", oc.ClientID)
			ok = false
		case dup:
			b.addf(d, field+".clientId", "OAuth client %q also belongs to Application %q (%s)", oc.ClientID, other.app.Name, other.app.Pos)
			ok = false
		default:
			// Claimed at once, so that a duplicate within this
			// application is found too.
			b.snap.clients[oc.ClientID] = clientEntry{app: c, keyType: kt}
		}
		c.OAuthClients = append(c.OAuthClients, OAuthClientBinding{ClientID: oc.ClientID, KeyType: kt})
	}
	ids := make(map[string]int, len(spec.APIKeys))
	for i, k := range spec.APIKeys {
		field := "spec.apiKeys[" + strconv.Itoa(i) + "]"
		key := &CompiledAPIKey{Application: c, ID: k.ID, AllowedReferrers: k.AllowedReferrers}
		switch j, dup := ids[k.ID]; {
		case k.ID == "":
			b.add(d, field+".id", errors.New("required: it names the key in logs and analytics"))
			ok = false
		case dup:
			b.addf(d, field+".id", "key id %q is also apiKeys[%d]", k.ID, j)
			ok = false
		default:
			ids[k.ID] = i
		}
		if !sha256RE.MatchString(k.SHA256) {
			b.add(d, field+".sha256", errors.New("want the key's SHA-256 as 64 lower-case hex digits"))
			ok = false
		} else {
			hex.Decode(key.Hash[:], []byte(k.SHA256))
			if other, dup := b.snap.keys[key.Hash]; dup {
				b.addf(d, field+".sha256", "same key hash as key %q of Application %q (%s)", other.ID, other.Application.Name, other.Application.Pos)
				ok = false
			} else {
				b.snap.keys[key.Hash] = key
			}
		}
		kt, err := ParseKeyType(k.KeyType)
		if err != nil {
			b.add(d, field+".keyType", err)
			ok = false
		}
		key.KeyType = kt
		if k.Expires != "" {
			t, err := time.Parse(time.RFC3339, k.Expires)
			if err != nil {
				b.add(d, field+".expires", fmt.Errorf("want an RFC 3339 time such as 2027-06-30T00:00:00Z: %w", err))
				ok = false
			}
			key.Expires = t
		}
		for j, s := range k.AllowedCIDRs {
			p, err := parsePrefix(s)
			if err != nil {
				b.add(d, fmt.Sprintf("%s.allowedCIDRs[%d]", field, j), err)
				ok = false
			}
			key.AllowedIPs = append(key.AllowedIPs, p)
		}
		for j, r := range k.AllowedReferrers {
			if r == "" {
				b.add(d, fmt.Sprintf("%s.allowedReferrers[%d]", field, j), errors.New("empty referrer pattern"))
				ok = false
			}
		}
		c.APIKeys = append(c.APIKeys, key)
	}
	// Client ids and key hashes stay claimed even when the application has
	// problems, so that a second application using them is reported too;
	// Build returns no snapshot then.
	if ok {
		b.snap.apps[d.Name] = c
	}
}

func (b *builder) subscription(d *Document) {
	s := d.Object.(*Subscription)
	spec := &s.Spec
	ok := true
	c := &CompiledSubscription{Name: d.Name, Pos: d.Pos, Doc: s}
	// missing reports an empty or dangling reference; one to a document
	// that exists but failed validation was reported there.
	missing := func(field, kind, name string) {
		ok = false
		if name == "" {
			b.add(d, field, errRequired)
		} else if _, declared := b.declared[kind][name]; !declared {
			b.addf(d, field, "unknown %s %q", kind, name)
		}
	}
	if app, found := b.snap.apps[spec.Application]; found {
		c.Application = app
	} else {
		missing("spec.application", KindApplication, spec.Application)
	}
	if api, found := b.snap.apis[spec.API]; found {
		c.API = api
	} else {
		missing("spec.api", KindAPI, spec.API)
	}
	if spec.Policy == "" {
		b.add(d, "spec.policy", errors.New("required: the plan the application is subscribed under"))
		ok = false
	} else {
		c.Policy = b.policyRef(d, "spec.policy", spec.Policy, ScopeSubscription)
		ok = ok && c.Policy != nil
	}
	state, err := ParseSubscriptionState(spec.State)
	if err != nil {
		b.add(d, "spec.state", err)
		ok = false
	}
	c.State = state
	if !ok {
		return
	}
	key := subKey{app: c.Application.Name, api: c.API.Name}
	if other, dup := b.snap.subs[key]; dup {
		b.addf(d, "spec.api", "Application %q is already subscribed to API %q by Subscription %q (%s)", key.app, key.api, other.Name, other.Pos)
		return
	}
	c.Counter = c.Application.Name + ":" + c.API.ID
	b.snap.subs[key] = c
}
