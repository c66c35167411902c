// The shared egress cases (egress.cases.ts) on the route: proxy+auth.
import { egressCases } from "./egress.cases.ts";

egressCases("proxy+auth");
