-- The dashboard sockets show a notification as it is recorded and as its delivery goes on. Every API
-- instance LISTENs on `haltless_notifications`; a row's insert and each change of its status say which
-- row changed (the payload stays far below NOTIFY's 8000 bytes), and the instance reads the rest itself.
CREATE FUNCTION haltless_notify_notification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('haltless_notifications',
        json_build_object('tenant_id', NEW.tenant_id, 'id', NEW.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_recorded AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION haltless_notify_notification();

CREATE TRIGGER notifications_status_changed AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION haltless_notify_notification();
