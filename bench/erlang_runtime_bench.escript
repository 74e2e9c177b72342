#!/usr/bin/env escript
%%! +S 1:1 +sbwt none +P 2000000
%% Erlang/OTP peer figures for bench_runtime, on one scheduler:
%%   spawn_stop    spawn N processes that wait for `stop`, send each `stop`, wait until
%%                 all are gone (processes/s)
%%   gos_new       N "get or spawn" on new keys: ets:lookup misses, spawn, ets:insert_new
%%   gos_existing  the same N keys again: ets:lookup hits (ops/s)
%%   restart       a one_for_one supervisor (intensity R+1 per 1 s: never trips) with one
%%                 child that exits on a `crash` message; the child sends itself `crash`
%%                 when it starts; R restarts (restarts/s). The supervisor keeps the
%%                 restart times of the last period in a list it walks on every restart,
%%                 so the rate falls as restarts accumulate: R (default 20000) runs long
%%                 enough to reach that steady state; N = 200000 would take ~30 s a run.
%%   restart_1k    the same for the first 1000 restarts (short list: the burst rate)
%%   rss           RSS growth (/proc/self/statm) for M idle processes, bytes/process (the
%%                 pid list kept to stop them is subtracted); also erlang:memory(total)
%% Logging is off (logger level none) so supervisor reports cost nothing, as bench_runtime
%% runs the daemon at log level warn. Prints "NAME VALUE" lines; rates are the median of 3.
%% usage: erlang_runtime_bench.escript [N [M [R]]]   (defaults 200000, 1000000, 20000)
-mode(compile).
-export([init/1, start_crasher/3]).

main(Args) ->
    [N, M, R] = [list_to_integer(A) || A <- Args ++ lists:nthtail(min(3, length(Args)), ["200000", "1000000", "20000"])],
    logger:set_primary_config(level, none),
    %% rss first, on a fresh heap (as bench_runtime)
    case M of
        0 -> ok;
        _ -> {Rss, Mem} = rss(M),
             io:format("rss_bytes_per_process ~w~n", [round(Rss)]),
             io:format("memory_bytes_per_process ~w~n", [round(Mem)])
    end,
    _ = spawn_stop(min(N, 10000)), % warm-up
    io:format("spawn_stop ~w~n", [round(median([N / spawn_stop(N) || _ <- [1, 2, 3]]))]),
    Keys = [integer_to_binary(I) || I <- lists:seq(0, N - 1)],
    {New, Old} = lists:unzip([gos(Keys, N) || _ <- [1, 2, 3]]),
    io:format("gos_new ~w~n", [round(median(New))]),
    io:format("gos_existing ~w~n", [round(median(Old))]),
    _ = restart(1000), % warm-up
    io:format("restart_1k ~w~n", [round(median([1000 / restart(1000) || _ <- [1, 2, 3]]))]),
    io:format("restart ~w~n", [round(median([R / restart(R) || _ <- [1, 2, 3]]))]).

median(L) -> lists:nth(2, lists:sort(L)).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

idle() -> receive stop -> ok end.

stop_all(Pids) ->
    Base = erlang:system_info(process_count) - length(Pids),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    wait_gone(Base, now_s() + 120).

%% Yield to the stopping processes until the process count is back to Base (bounded).
wait_gone(Base, Limit) ->
    case erlang:system_info(process_count) =< Base of
        true -> ok;
        false ->
            now_s() < Limit orelse error(processes_did_not_stop),
            erlang:yield(),
            wait_gone(Base, Limit)
    end.

spawn_stop(N) ->
    T0 = now_s(),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, N)],
    stop_all(Pids),
    now_s() - T0.

get_or_spawn(T, K) ->
    case ets:lookup(T, K) of
        [{_, P}] -> P;
        [] ->
            P = spawn(fun idle/0),
            true = ets:insert_new(T, {K, P}),
            P
    end.

%% One pass of new keys then one of existing keys over a fresh table; returns both rates.
gos(Keys, N) ->
    T = ets:new(registry, [set, public]),
    T0 = now_s(),
    Pids = [get_or_spawn(T, K) || K <- Keys],
    T1 = now_s(),
    Again = [get_or_spawn(T, K) || K <- Keys],
    T2 = now_s(),
    Again =:= Pids orelse error(existing_keys_spawned),
    stop_all(Pids),
    ets:delete(T),
    {N / (T1 - T0), N / (T2 - T1)}.

%% ---- restarts under a supervisor ----
restart(N) ->
    Ctr = counters:new(1, []),
    Self = self(),
    Child = #{id => crasher, start => {?MODULE, start_crasher, [Ctr, N, Self]},
              restart => permanent, shutdown => brutal_kill, type => worker},
    T0 = now_s(),
    {ok, Sup} = supervisor:start_link(?MODULE, {N + 1, Child}),
    receive crashed_enough -> ok after 120000 -> error(restarts_did_not_finish) end,
    Dt = now_s() - T0,
    unlink(Sup),
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok after 10000 -> error(supervisor_did_not_stop) end,
    Dt.

%% supervisor callback
init({Intensity, Child}) ->
    {ok, {#{strategy => one_for_one, intensity => Intensity, period => 1}, [Child]}}.

%% The child: the first start plus N restarts; after the N-th restart it tells the bench.
start_crasher(Ctr, N, Parent) ->
    {ok, spawn_link(fun() -> crasher(Ctr, N, Parent) end)}.

crasher(Ctr, N, Parent) ->
    counters:add(Ctr, 1, 1),
    case counters:get(Ctr, 1) of
        C when C > N -> Parent ! crashed_enough, idle(); % until the supervisor stops
        _ -> self() ! crash, receive crash -> exit(crash) end
    end.

%% ---- memory per idle process ----
rss_now() ->
    {ok, B} = file:read_file("/proc/self/statm"),
    [_, Res | _] = binary:split(B, <<" ">>, [global]),
    binary_to_integer(Res) * page_size().

page_size() ->
    case string:trim(os:cmd("getconf PAGESIZE")) of
        "" -> 4096;
        S -> list_to_integer(S)
    end.

rss(M) ->
    erlang:garbage_collect(),
    R0 = rss_now(),
    E0 = erlang:memory(total),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, M)],
    erlang:yield(),
    erlang:garbage_collect(),
    R1 = rss_now(),
    E1 = erlang:memory(total),
    List = erts_debug:flat_size(Pids) * erlang:system_info(wordsize),
    stop_all(Pids),
    {(R1 - R0 - List) / M, (E1 - E0 - List) / M}.
