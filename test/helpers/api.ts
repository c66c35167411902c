/** Calls to a running admin API, with a token, answering status, headers and the parsed body. */
export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

export function apiClient(baseUrl: string, defaultToken: string | null) {
  return async (method: string, path: string, body?: unknown, token: string | null = defaultToken): Promise<ApiAnswer> => {
    const res = await fetch(baseUrl + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = undefined; // not JSON (a download): read `text`
    }
    return { status: res.status, headers: res.headers, text, body: parsed };
  };
}
