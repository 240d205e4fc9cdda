//! A scripted apiserver behind a `tower-test` mock (the kube-rs/controller-rs fixtures
//! approach): an in-memory object store that answers get, list, create, patch (server-side
//! apply, merge, strategic merge, JSON patch), delete, and records every call as the RBAC
//! verb it needs. `kube-fake-client` would be the in-memory alternative, but its 0.3 targets
//! kube 4.
//!
//! Simplifications: server-side apply replaces the applied object's content (no field
//! ownership); deletes are immediate (no graceful termination); label selectors are
//! equality-only; watches are not served (the tests call the reconciler directly).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::{Value, json};

/// One API call, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// RBAC verb: get, list, watch, create, patch, update, delete.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// Plural resource, with `/subresource` when there is one.
    pub resource: String,
    pub name: Option<String>,
    /// The request body, for patches and creates.
    pub body: Option<Value>,
    /// `?fieldManager=` of a patch.
    pub field_manager: Option<String>,
}

type Key = (String, String, String, String); // group, resource, namespace, name

#[derive(Debug, Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    calls: Vec<Call>,
    /// Every Event written (created, or patched as a repeat of a series), in order.
    events: Vec<Value>,
    version: u64,
}

/// Handle to the store behind a kube [`Client`].
#[derive(Clone, Debug)]
pub struct ApiServer {
    store: Arc<Mutex<Store>>,
}

impl ApiServer {
    pub fn new() -> Self {
        ApiServer {
            store: Arc::default(),
        }
    }

    /// A client whose every request this server answers (spawns the serving task).
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let store = self.store.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Option<Value> = serde_json::from_slice(&bytes).ok();
                let (status, value) = handle_request(&store, &parts, body);
                let resp = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        });
        Client::new(service, "default")
    }

    /// Stores a typed object as it is (a test's setup, not an API call).
    pub fn put<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let mut value = serde_json::to_value(obj).unwrap();
        let key = key_of::<K>(&value);
        let mut store = self.store.lock().unwrap();
        store.version += 1;
        value["metadata"]["resourceVersion"] = json!(store.version.to_string());
        store.objects.insert(key, value);
    }

    pub fn get<K: Resource<DynamicType = ()> + serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let key = (
            K::group(&()).into_owned(),
            K::plural(&()).into_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        let store = self.store.lock().unwrap();
        store
            .objects
            .get(&key)
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    pub fn list<K: Resource<DynamicType = ()> + serde::de::DeserializeOwned>(&self) -> Vec<K> {
        let (g, r) = (K::group(&()), K::plural(&()));
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|((kg, kr, _, _), _)| *kg == g && *kr == r)
            .map(|(_, v)| serde_json::from_value(v.clone()).unwrap())
            .collect()
    }

    pub fn remove<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) {
        let key = (
            K::group(&()).into_owned(),
            K::plural(&()).into_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        self.store.lock().unwrap().objects.remove(&key);
    }

    /// Every Event written, in order; a repeat (an Event series) appears again.
    pub fn event_log(&self) -> Vec<Value> {
        self.store.lock().unwrap().events.clone()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.store.lock().unwrap().calls.clone()
    }

    /// The calls since the last take.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.store.lock().unwrap().calls)
    }
}

fn key_of<K: Resource<DynamicType = ()>>(value: &Value) -> Key {
    let meta = &value["metadata"];
    (
        K::group(&()).into_owned(),
        K::plural(&()).into_owned(),
        meta["namespace"].as_str().unwrap_or("").to_owned(),
        meta["name"].as_str().unwrap_or("").to_owned(),
    )
}

/// `/api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]` or the same under
/// `/apis/{group}/{version}`.
struct Target {
    group: String,
    namespace: String,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _v, rest @ ..] => (String::new(), rest),
        ["apis", g, _v, rest @ ..] => ((*g).to_owned(), rest),
        _ => return None,
    };
    let ["namespaces", ns, resource, tail @ ..] = rest else {
        return None;
    };
    Some(Target {
        group,
        namespace: (*ns).to_owned(),
        resource: (*resource).to_owned(),
        name: tail.first().map(|s| (*s).to_owned()),
        sub: tail.get(1).map(|s| (*s).to_owned()),
    })
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_error(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn handle_request(
    store: &Mutex<Store>,
    parts: &http::request::Parts,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let Some(t) = parse_path(parts.uri.path()) else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", "unknown path");
    };
    let q = query(&parts.uri);
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut store = store.lock().unwrap();
    let resource = match &t.sub {
        Some(sub) => format!("{}/{sub}", t.resource),
        None => t.resource.clone(),
    };
    let record = |store: &mut Store, verb: &str| {
        if t.resource == "events" && matches!(verb, "create" | "patch") {
            store.events.extend(body.clone());
        }
        store.calls.push(Call {
            verb: verb.to_owned(),
            group: t.group.clone(),
            resource: resource.clone(),
            name: t.name.clone(),
            body: body.clone(),
            field_manager: q.get("fieldManager").cloned(),
        });
    };
    let key = |name: &str| {
        (
            t.group.clone(),
            t.resource.clone(),
            t.namespace.clone(),
            name.to_owned(),
        )
    };
    match (parts.method.as_str(), &t.name) {
        ("GET", None) if q.get("watch").is_some_and(|w| w == "true") => {
            record(&mut store, "watch");
            status_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "no watches here",
            )
        }
        ("GET", None) => {
            record(&mut store, "list");
            let selector = q.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|((g, r, ns, _), _)| {
                    *g == t.group && *r == t.resource && *ns == t.namespace
                })
                .map(|(_, v)| v.clone())
                .filter(|v| matches_selector(v, &selector))
                .collect();
            let rv = store.version.to_string();
            (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        ("GET", Some(name)) => {
            record(&mut store, "get");
            match store.objects.get(&key(name)) {
                Some(v) => (StatusCode::OK, v.clone()),
                None => status_error(StatusCode::NOT_FOUND, "NotFound", "not found"),
            }
        }
        ("POST", None) => {
            record(&mut store, "create");
            let Some(mut obj) = body.clone() else {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", "no body");
            };
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if store.objects.contains_key(&key(&name)) {
                return status_error(StatusCode::CONFLICT, "AlreadyExists", "exists");
            }
            created(&mut store, &mut obj, &t.namespace);
            store.objects.insert(key(&name), obj.clone());
            (StatusCode::CREATED, obj)
        }
        ("PATCH", Some(name)) => {
            record(&mut store, "patch");
            let body = body.clone().unwrap_or(Value::Null);
            let existing = store.objects.get(&key(name)).cloned();
            let patched = match existing {
                None if content_type.contains("apply-patch") && t.sub.is_none() => {
                    record(&mut store, "create");
                    let mut obj = body;
                    obj["metadata"]["name"] = json!(name);
                    created(&mut store, &mut obj, &t.namespace);
                    obj
                }
                None => return status_error(StatusCode::NOT_FOUND, "NotFound", "not found"),
                Some(mut obj) => {
                    if let Err(e) = patch(&mut obj, &body, &content_type, t.sub.as_deref()) {
                        return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
                    }
                    store.version += 1;
                    obj["metadata"]["resourceVersion"] = json!(store.version.to_string());
                    obj
                }
            };
            store.objects.insert(key(name), patched.clone());
            (StatusCode::OK, patched)
        }
        ("DELETE", Some(name)) => {
            record(&mut store, "delete");
            let Some(obj) = store.objects.get(&key(name)).cloned() else {
                return status_error(StatusCode::NOT_FOUND, "NotFound", "not found");
            };
            let want_uid = body
                .as_ref()
                .and_then(|b| b["preconditions"]["uid"].as_str().map(str::to_owned));
            if let Some(uid) = want_uid
                && obj["metadata"]["uid"].as_str() != Some(uid.as_str())
            {
                return status_error(StatusCode::CONFLICT, "Conflict", "uid precondition failed");
            }
            store.objects.remove(&key(name));
            (StatusCode::OK, obj)
        }
        (method, _) => {
            record(&mut store, &method.to_ascii_lowercase());
            status_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", method)
        }
    }
}

/// Server-set metadata of a new object.
fn created(store: &mut Store, obj: &mut Value, namespace: &str) {
    store.version += 1;
    let meta = &mut obj["metadata"];
    meta["namespace"] = json!(namespace);
    meta["resourceVersion"] = json!(store.version.to_string());
    meta["uid"] = json!(format!("uid-{}", store.version));
    meta["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    meta["generation"] = json!(1);
}

fn patch(
    obj: &mut Value,
    body: &Value,
    content_type: &str,
    sub: Option<&str>,
) -> Result<(), String> {
    if content_type.contains("json-patch") {
        let mut ops: Vec<Value> =
            serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
        // `test` of an absent path against null passes on the apiserver; not in json-patch.
        ops.retain(|op| {
            !(op["op"] == "test"
                && op["value"].is_null()
                && op["path"]
                    .as_str()
                    .is_some_and(|p| obj.pointer(p).is_none()))
        });
        let ops: json_patch::Patch =
            serde_json::from_value(Value::Array(ops)).map_err(|e| e.to_string())?;
        return json_patch::patch(obj, &ops).map_err(|e| e.to_string());
    }
    let apply = content_type.contains("apply-patch");
    match sub {
        Some("status") if apply => obj["status"] = body["status"].clone(),
        Some("status") => json_patch::merge(&mut obj["status"], &body["status"]),
        Some(other) => return Err(format!("subresource {other} not served")),
        None if apply => {
            // The applied content replaces ours; server-owned metadata and status stay.
            let mut next = body.clone();
            for field in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "namespace",
            ] {
                next["metadata"][field] = obj["metadata"][field].clone();
            }
            if next["metadata"].get("finalizers").is_none()
                && obj["metadata"].get("finalizers").is_some()
            {
                next["metadata"]["finalizers"] = obj["metadata"]["finalizers"].clone();
            }
            if obj.get("status").is_some() {
                next["status"] = obj["status"].clone();
            }
            *obj = next;
        }
        None => json_patch::merge(obj, body),
    }
    Ok(())
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return false;
        };
        obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
    })
}
