-- The control plane's schema. Runs as the owner (the migrating role); the services connect as
-- interview_service, which owns nothing, is no superuser and has no BYPASSRLS. Every table that
-- holds tenant data has row-level security enabled and forced, keyed on the transaction-local
-- setting app.tenant_id. The few lookups that must come before a tenant is known go through
-- SECURITY DEFINER functions ("doors") below, each returning only what its caller needs.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'interview_service') THEN
    CREATE ROLE interview_service LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;

-- Accounts. On Supabase auth.users already exists and is used as it is.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION app_current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION app_is_platform_admin() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce(current_setting('app.platform_admin', true), '') = 'on' $$;

CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  display_name text NOT NULL DEFAULT '',
  secret_prefix text NOT NULL,
  secret_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at, id);

CREATE TABLE templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  role text NOT NULL,
  questions text[] NOT NULL,
  time_limit_seconds integer NOT NULL CHECK (time_limit_seconds > 0),
  language text NOT NULL,
  voice text NOT NULL,
  instructions text NOT NULL DEFAULT '',
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, id)
);
CREATE INDEX templates_tenant ON templates (tenant_id, created_at, id);

-- A person: one row (and one account) however many tenants invite them.
CREATE TABLE candidates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE CHECK (email = lower(email)),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant's view of a person, exactly as the seed has it.
CREATE TABLE tenant_candidates (
  tenant_id uuid REFERENCES tenants (id),
  candidate_id uuid REFERENCES candidates (id),
  external_id text,
  status text,
  PRIMARY KEY (tenant_id, candidate_id)
);
CREATE UNIQUE INDEX tenant_candidates_external_id ON tenant_candidates (tenant_id, external_id)
  WHERE external_id IS NOT NULL;

-- What else a tenant records about a candidate.
CREATE TABLE tenant_candidate_profiles (
  tenant_id uuid NOT NULL,
  candidate_id uuid NOT NULL,
  full_name text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, candidate_id),
  FOREIGN KEY (tenant_id, candidate_id) REFERENCES tenant_candidates (tenant_id, candidate_id)
    ON DELETE CASCADE
);
CREATE INDEX tenant_candidate_profiles_order ON tenant_candidate_profiles (tenant_id, created_at, candidate_id);

CREATE TABLE interview_invitations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  candidate_id uuid NOT NULL,
  template_id uuid NOT NULL,
  -- The template as sent: later updates of the template change new invitations only.
  template_snapshot jsonb NOT NULL,
  token_hash bytea NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
  max_uses integer NOT NULL DEFAULT 1 CHECK (max_uses >= 1),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'redeemed', 'revoked')),
  revoked boolean NOT NULL DEFAULT false,
  revoked_at timestamptz,
  email_requested boolean NOT NULL DEFAULT false,
  redeemed_at timestamptz,
  redeemed_by_user_id uuid REFERENCES auth.users (id),
  session_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, id),
  CHECK (uses <= max_uses),
  FOREIGN KEY (tenant_id, candidate_id) REFERENCES tenant_candidates (tenant_id, candidate_id),
  FOREIGN KEY (tenant_id, template_id) REFERENCES templates (tenant_id, id)
);
CREATE INDEX interview_invitations_tenant ON interview_invitations (tenant_id, created_at, id);

CREATE TABLE interview_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  candidate_id uuid NOT NULL,
  invitation_id uuid NOT NULL UNIQUE,
  template_id uuid NOT NULL,
  template_snapshot jsonb NOT NULL,
  user_id uuid REFERENCES auth.users (id),
  status text NOT NULL DEFAULT 'ready'
    CHECK (status IN ('ready', 'in_progress', 'completed', 'abandoned', 'ended')),
  end_reason text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  ended_at timestamptz,
  video_recording_id text,
  video_recording_url text,
  UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, invitation_id) REFERENCES interview_invitations (tenant_id, id),
  FOREIGN KEY (tenant_id, candidate_id) REFERENCES tenant_candidates (tenant_id, candidate_id)
);
CREATE INDEX interview_sessions_tenant ON interview_sessions (tenant_id, created_at, id);
CREATE INDEX interview_sessions_candidate ON interview_sessions (tenant_id, candidate_id, created_at);

ALTER TABLE interview_invitations
  ADD FOREIGN KEY (tenant_id, session_id) REFERENCES interview_sessions (tenant_id, id)
  DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE transcript_items (
  tenant_id uuid NOT NULL,
  session_id uuid NOT NULL,
  sequence bigint NOT NULL CHECK (sequence >= 1),
  speaker text NOT NULL CHECK (speaker IN ('interviewer', 'candidate')),
  text text NOT NULL,
  audio_start_ms bigint NOT NULL DEFAULT 0 CHECK (audio_start_ms >= 0),
  audio_end_ms bigint NOT NULL DEFAULT 0 CHECK (audio_end_ms >= audio_start_ms),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, sequence),
  FOREIGN KEY (tenant_id, session_id) REFERENCES interview_sessions (tenant_id, id)
);

CREATE TABLE recordings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  session_id uuid NOT NULL,
  provider text NOT NULL,
  provider_video_id text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'pending',
  url text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (tenant_id, session_id) REFERENCES interview_sessions (tenant_id, id)
);

-- Mail to send. The link's token is kept only encrypted (link_ciphertext) and rendered into
-- the bodies' {{invite_url}} placeholder at delivery.
CREATE TABLE email_outbox (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  invitation_id uuid,
  to_email text NOT NULL,
  subject text NOT NULL,
  text_body text NOT NULL,
  html_body text NOT NULL,
  link_ciphertext bytea,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  last_error text NOT NULL DEFAULT '',
  provider text NOT NULL DEFAULT '',
  provider_message_id text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  FOREIGN KEY (tenant_id, invitation_id) REFERENCES interview_invitations (tenant_id, id)
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX email_outbox_tenant ON email_outbox (tenant_id, created_at, id);

-- Create requests' results, so a retried create returns the first result. The response is
-- encrypted with a key derived from the caller's idempotency key, which is stored only hashed.
CREATE TABLE idempotency_keys (
  tenant_id uuid REFERENCES tenants (id),  -- NULL for platform-level creates (CreateTenant)
  method text NOT NULL,
  key_hash bytea NOT NULL,
  request_hash bytea NOT NULL,
  response_ciphertext bytea,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idempotency_keys_unique
  ON idempotency_keys ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), method, key_hash);

-- Row-level security: enabled and forced everywhere tenant data lives.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['api_keys', 'templates', 'tenant_candidates', 'tenant_candidate_profiles',
                           'interview_invitations', 'interview_sessions', 'transcript_items',
                           'recordings', 'email_outbox']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I TO interview_service '
                   'USING (tenant_id = app_current_tenant()) '
                   'WITH CHECK (tenant_id = app_current_tenant())', t);
    -- The owner runs migrations and the doors; on Supabase it may not bypass RLS by itself.
    EXECUTE format('CREATE POLICY owner_all ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO interview_service', t);
  END LOOP;
END
$$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
-- A tenant reads its own row; only the platform admin creates or changes tenants.
CREATE POLICY tenant_isolation ON tenants FOR SELECT TO interview_service
  USING (id = app_current_tenant());
CREATE POLICY platform_admin ON tenants TO interview_service
  USING (app_is_platform_admin()) WITH CHECK (app_is_platform_admin());
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO interview_service;

-- The platform admin reads every tenant's outbox (`interview outbox`), and nothing else.
CREATE POLICY platform_admin_read ON email_outbox FOR SELECT TO interview_service
  USING (app_is_platform_admin());

-- A tenant sees a person only while it has them as its candidate. Rows are created through
-- ensure_candidate() only.
ALTER TABLE candidates ENABLE ROW LEVEL SECURITY;
ALTER TABLE candidates FORCE ROW LEVEL SECURITY;
CREATE POLICY linked_tenants ON candidates FOR SELECT TO interview_service
  USING (EXISTS (SELECT 1 FROM tenant_candidates tc
                 WHERE tc.candidate_id = candidates.id AND tc.tenant_id = app_current_tenant()));
GRANT SELECT ON candidates TO interview_service;

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys TO interview_service
  USING (tenant_id = app_current_tenant() OR (tenant_id IS NULL AND app_is_platform_admin()))
  WITH CHECK (tenant_id = app_current_tenant() OR (tenant_id IS NULL AND app_is_platform_admin()));
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO interview_service;

DO $$
BEGIN
  EXECUTE format('CREATE POLICY owner_all ON tenants TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE format('CREATE POLICY owner_all ON candidates TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE format('CREATE POLICY owner_all ON idempotency_keys TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO interview_service;
REVOKE ALL ON SCHEMA auth FROM interview_service;

-- Session events for WatchSession: the payload is a session id, never tenant data.
CREATE FUNCTION notify_session_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('interview_session_events', NEW.id::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER interview_sessions_notify AFTER INSERT OR UPDATE ON interview_sessions
  FOR EACH ROW EXECUTE FUNCTION notify_session_changed();

CREATE FUNCTION notify_transcript_item() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('interview_session_events', NEW.session_id::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER transcript_items_notify AFTER INSERT ON transcript_items
  FOR EACH ROW EXECUTE FUNCTION notify_transcript_item();

-- The doors. Each is SECURITY DEFINER (runs as the owner), takes a hash or id, and returns only
-- the tenant id and the row its one caller needs. Covered by tests/test_rls_matrix.py.

-- API key authentication: secret hash in, the key's tenant out (active keys only).
CREATE FUNCTION door_authenticate_api_key(p_secret_hash bytea)
RETURNS TABLE (api_key_id uuid, tenant_id uuid, secret_hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT k.id, k.tenant_id, k.secret_hash FROM api_keys k
  WHERE k.secret_hash = p_secret_hash AND k.revoked_at IS NULL
$$;

-- Invitation by its token's hash: for the edge's invitation page and redemption.
CREATE FUNCTION door_find_invitation(p_token_hash bytea)
RETURNS TABLE (invitation_id uuid, tenant_id uuid, token_hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT i.id, i.tenant_id, i.token_hash FROM interview_invitations i
  WHERE i.token_hash = p_token_hash
$$;

-- A session's tenant, for the edge and actors, which know only a session id.
CREATE FUNCTION door_session_tenant(p_session_id uuid)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.tenant_id FROM interview_sessions s WHERE s.id = p_session_id
$$;

-- The person with this email, created if new. Returns only the id, whoever created the row, so a
-- tenant learns nothing of other tenants' candidates.
CREATE FUNCTION door_ensure_candidate(p_email text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO candidates (email) VALUES (lower(p_email)) ON CONFLICT (email) DO NOTHING RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id INTO v_id FROM candidates WHERE email = lower(p_email);
  END IF;
  RETURN v_id;
END
$$;

-- The account for this email, created if new; returns only its id.
CREATE FUNCTION door_ensure_user(p_email text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, auth, pg_temp AS $$
DECLARE
  v_id uuid;
BEGIN
  SELECT id INTO v_id FROM auth.users WHERE lower(email) = lower(p_email) LIMIT 1;
  IF v_id IS NULL THEN
    INSERT INTO auth.users (email) VALUES (lower(p_email)) ON CONFLICT (email) DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NULL THEN
      SELECT id INTO v_id FROM auth.users WHERE lower(email) = lower(p_email) LIMIT 1;
    END IF;
  END IF;
  RETURN v_id;
END
$$;

-- Whether an account exists; nothing else about it.
CREATE FUNCTION door_user_exists(p_user_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, auth, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = p_user_id)
$$;

-- The delivery loop works across tenants: it claims due messages (leased, so a crashed sender's
-- claim lapses), then reports each one's outcome. It sees only the outbox.
CREATE FUNCTION door_claim_outbox(p_limit integer, p_lease_seconds double precision)
RETURNS SETOF email_outbox
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE email_outbox o
  SET status = 'sending', attempts = o.attempts + 1,
      lease_until = now() + make_interval(secs => p_lease_seconds)
  WHERE o.id IN (
    SELECT id FROM email_outbox
    WHERE (status = 'pending' AND next_attempt_at <= now())
       OR (status = 'sending' AND lease_until < now())
    ORDER BY next_attempt_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED)
  RETURNING o.*
$$;

CREATE FUNCTION door_complete_outbox(p_id uuid, p_provider text, p_provider_message_id text,
                                     p_keep_link boolean)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE email_outbox
  SET status = 'sent', sent_at = now(), lease_until = NULL, provider = p_provider,
      provider_message_id = p_provider_message_id, last_error = '',
      link_ciphertext = CASE WHEN p_keep_link THEN link_ciphertext END
  WHERE id = p_id AND status = 'sending'
$$;

CREATE FUNCTION door_fail_outbox(p_id uuid, p_error text, p_retry_in_seconds double precision,
                                 p_give_up boolean)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE email_outbox
  SET status = CASE WHEN p_give_up THEN 'failed' ELSE 'pending' END,
      next_attempt_at = now() + make_interval(secs => p_retry_in_seconds),
      lease_until = NULL, last_error = left(p_error, 500)
  WHERE id = p_id AND status = 'sending'
$$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['door_authenticate_api_key(bytea)', 'door_find_invitation(bytea)',
                           'door_session_tenant(uuid)', 'door_ensure_candidate(text)',
                           'door_ensure_user(text)', 'door_user_exists(uuid)',
                           'door_claim_outbox(integer, double precision)',
                           'door_complete_outbox(uuid, text, text, boolean)',
                           'door_fail_outbox(uuid, text, double precision, boolean)']
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO interview_service', f);
  END LOOP;
END
$$;
