package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tidemark-dev/tidemark/internal/durable"
)

// TokenPrefix starts every token a TokenStore issues, so that a leaked
// token is recognizable (secret scanners, logs).
const TokenPrefix = "tdm_"

// Token is one issued token as the store keeps it: never the token itself,
// only its SHA-256 (tokens are 256 random bits, so a fast hash is enough: no
// dictionary attack applies).
type Token struct {
	// ID names the token for listing and revoking; it is also the token's
	// second part (tdm_<ID>_<secret>), so an admin can tell which token a
	// caller holds without the store keeping the secret.
	ID string `json:"id"`
	// Hash is the hex SHA-256 of the whole token.
	Hash      string    `json:"hash"`
	Principal Principal `json:"principal"`
	Created   time.Time `json:"created"`
	// Revoked is when the token was revoked; zero: valid.
	Revoked time.Time `json:"revoked,omitzero"`
}

// tokenFile is the file's layout.
type tokenFile struct {
	Tokens []Token `json:"tokens"`
}

// ErrUnknownToken: no token has the ID given to Revoke.
var ErrUnknownToken = errors.New("auth: no such token")

// TokenStore keeps tokens in a YAML file (mode 0600) and authenticates
// callers with them. It is safe for concurrent use within a process, and it
// rereads the file when its modification time or size changes, so a token
// created or revoked by another process (`tidemark token revoke`) applies to
// a running server without a restart. Two processes writing the file at
// once may lose one write; admins change tokens one at a time.
type TokenStore struct {
	path string

	mu     sync.Mutex
	tokens []Token
	byHash map[string]int // hex hash → index in tokens
	stamp  fileStamp      // of the file when last read or written
	now    func() time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

var (
	_ Authenticator = (*TokenStore)(nil)
	_ Directory     = (*TokenStore)(nil)
)

// OpenTokenStore opens the token file at path; a missing file is an empty
// store (Create makes it).
func OpenTokenStore(path string) (*TokenStore, error) {
	s := &TokenStore{path: path, now: time.Now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload rereads the file if it changed since the last read. s.mu is held.
func (s *TokenStore) reload() error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.set(nil, fileStamp{})
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if stamp == s.stamp && s.byHash != nil {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	var f tokenFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return fmt.Errorf("auth: token file %s: %w", s.path, err)
	}
	for _, t := range f.Tokens {
		if err := t.validate(); err != nil {
			return fmt.Errorf("auth: token file %s: %w", s.path, err)
		}
	}
	s.set(f.Tokens, stamp)
	return nil
}

func (s *TokenStore) set(tokens []Token, stamp fileStamp) {
	s.tokens = tokens
	s.stamp = stamp
	s.byHash = make(map[string]int, len(tokens))
	for i, t := range tokens {
		s.byHash[t.Hash] = i
	}
}

func (t Token) validate() error {
	if t.ID == "" || len(t.Hash) != sha256.Size*2 {
		return fmt.Errorf("token %q: missing id or malformed hash", t.ID)
	}
	return validatePrincipal(t.Principal)
}

func validatePrincipal(p Principal) error {
	if strings.TrimSpace(p.ID) == "" {
		return errors.New("a principal needs an id")
	}
	for _, g := range p.Grants {
		if !g.Role.Valid() {
			return fmt.Errorf("principal %q: unknown role %q (roles: %v)", p.ID, g.Role, Roles)
		}
		if g.Role == RoleReader && len(g.Jobs) > 0 {
			return fmt.Errorf("principal %q: a reader grant cannot name jobs: every principal reads every job", p.ID)
		}
	}
	return nil
}

// Authenticate implements Authenticator: the principal of a token that is
// in the store and not revoked; ErrBadToken otherwise.
func (s *TokenStore) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	sum := sha256.Sum256([]byte(token))
	h := hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return Principal{}, err
	}
	i, ok := s.byHash[h]
	if !ok || subtle.ConstantTimeCompare([]byte(s.tokens[i].Hash), []byte(h)) != 1 || !s.tokens[i].Revoked.IsZero() {
		return Principal{}, ErrBadToken
	}
	return s.tokens[i].Principal, nil
}

// Principal implements Directory: the principal with id, holding the
// grants of all its tokens that are not revoked.
func (s *TokenStore) Principal(_ context.Context, id string) (Principal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return Principal{}, err
	}
	var p Principal
	for _, t := range s.tokens {
		if t.Principal.ID != id || !t.Revoked.IsZero() {
			continue
		}
		if p.ID == "" {
			p = Principal{ID: id, Name: t.Principal.Name}
		}
		p.Grants = append(p.Grants, t.Principal.Grants...)
	}
	if p.ID == "" {
		return Principal{}, fmt.Errorf("%w: %q", ErrUnknownPrincipal, id)
	}
	return p, nil
}

// Create issues a token for p and stores its hash. The token is returned
// once: the store cannot give it again.
func (s *TokenStore) Create(p Principal) (token string, t Token, err error) {
	if err := validatePrincipal(p); err != nil {
		return "", Token{}, fmt.Errorf("auth: %w", err)
	}
	var id [6]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, err
	}
	t = Token{ID: hex.EncodeToString(id[:]), Principal: p}
	token = TokenPrefix + t.ID + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(token))
	t.Hash = hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return "", Token{}, err
	}
	t.Created = s.now().UTC().Truncate(time.Second)
	if err := s.write(append(slices.Clone(s.tokens), t)); err != nil {
		return "", Token{}, err
	}
	return token, t, nil
}

// Revoke revokes the token with id; from then on it authenticates nobody.
// Revoking a revoked token is not an error; an unknown id is
// ErrUnknownToken.
func (s *TokenStore) Revoke(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return err
	}
	i := slices.IndexFunc(s.tokens, func(t Token) bool { return t.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrUnknownToken, id)
	}
	if !s.tokens[i].Revoked.IsZero() {
		return nil
	}
	tokens := slices.Clone(s.tokens)
	tokens[i].Revoked = s.now().UTC().Truncate(time.Second)
	return s.write(tokens)
}

// List returns every token (revoked ones too), oldest first.
func (s *TokenStore) List() ([]Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return nil, err
	}
	return slices.Clone(s.tokens), nil
}

// write replaces the file with tokens atomically (a temporary file renamed
// over it). s.mu is held.
func (s *TokenStore) write(tokens []Token) error {
	b, err := yaml.Marshal(tokenFile{Tokens: tokens})
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*")
	if err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: token file: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	if err := durable.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	s.set(tokens, fileStamp{fi.ModTime(), fi.Size()})
	return nil
}
