-- Accounts verified elsewhere (Supabase Auth): the edge checks the user's JWT and redeems with
-- its `sub` as the account id. On Supabase that id is already a row of Supabase's own auth.users;
-- on plain PostgreSQL our auth.users is the account table, and the account is created here with
-- the same id. The door creates rows only in an auth.users owned by the migrating role (ours),
-- never in one another service manages. Nothing is matched by email: an email already held by
-- another account is left off the new row rather than linking the two.
CREATE FUNCTION door_ensure_external_user(p_user_id uuid, p_email text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, auth, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM auth.users WHERE id = p_user_id) THEN
    RETURN true;
  END IF;
  IF (SELECT c.relowner FROM pg_class c WHERE c.oid = 'auth.users'::regclass)
     IS DISTINCT FROM (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
    RETURN false;
  END IF;
  INSERT INTO auth.users (id, email) VALUES (p_user_id, lower(nullif(p_email, '')))
    ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN  -- the email is another account's, or this id was created meanwhile
    INSERT INTO auth.users (id) VALUES (p_user_id) ON CONFLICT (id) DO NOTHING;
  END IF;
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION door_ensure_external_user(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION door_ensure_external_user(uuid, text) TO interview_service;
