-- GetSession in one round trip. The function runs as its caller (SECURITY INVOKER), so row-level
-- security applies exactly as in a transaction; PL/pgSQL runs its statements in order, so the
-- tenant is set (transaction-locally, for the caller's single-statement transaction) before the
-- row is read. A plain statement could not promise that order.
CREATE FUNCTION app_session_for_tenant(p_tenant uuid, p_session uuid)
RETURNS SETOF interview_sessions
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant::text, true);
  PERFORM set_config('app.platform_admin', 'off', true);
  RETURN QUERY SELECT * FROM interview_sessions WHERE id = p_session;
END
$$;
REVOKE ALL ON FUNCTION app_session_for_tenant(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_session_for_tenant(uuid, uuid) TO interview_service;
