extends Node
## Client for the wsmp-scene `lobby` example server.
##
## godot --headless --path examples/godot-lobby -- --url=ws://127.0.0.1:9080/ --name=ann [--say=TEXT] [--quit-after=SECONDS]
##
## This node is the main scene's root, so its path is /root/Lobby: the server
## registers that path with the same RPC names as below (ids are positions in
## the sorted names; the path checksum covers the names).
##
## The server (peer 1) implements join, say, move and echo; it calls welcome,
## announce, chat, moved and echoed here.

var url := "ws://127.0.0.1:9080/"
var player_name := "player"
var say_text := "hello"
var quit_after := 0.0
var peer := WebSocketMultiplayerPeer.new()
var quitting := false


func _ready() -> void:
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--url="):
			url = arg.trim_prefix("--url=")
		elif arg.begins_with("--name="):
			player_name = arg.trim_prefix("--name=")
		elif arg.begins_with("--say="):
			say_text = arg.trim_prefix("--say=")
		elif arg.begins_with("--quit-after="):
			quit_after = arg.trim_prefix("--quit-after=").to_float()
		else:
			printerr("ignoring unknown argument %s" % arg)
	multiplayer.connected_to_server.connect(_on_connected_to_server)
	multiplayer.connection_failed.connect(_on_connection_failed)
	multiplayer.server_disconnected.connect(_on_server_disconnected)
	multiplayer.peer_connected.connect(_on_peer_connected)
	multiplayer.peer_disconnected.connect(_on_peer_disconnected)
	(multiplayer as SceneMultiplayer).peer_packet.connect(_on_peer_packet)
	var err := peer.create_client(url)
	if err != OK:
		print("connection failed: %s" % error_string(err))
		get_tree().quit(1)
		return
	multiplayer.multiplayer_peer = peer
	print("connecting to %s" % url)
	if quit_after > 0.0:
		get_tree().create_timer(quit_after).timeout.connect(_on_quit_timer)


func _on_connected_to_server() -> void:
	print("connected as %d" % multiplayer.get_unique_id())
	join.rpc_id(1, player_name)


func _on_connection_failed() -> void:
	print("connection failed")
	get_tree().quit(1)


func _on_server_disconnected() -> void:
	if not quitting:
		print("server disconnected")
		get_tree().quit(0)


func _on_peer_connected(id: int) -> void:
	if id != 1:
		print("peer joined %d" % id)


func _on_peer_disconnected(id: int) -> void:
	if id != 1:
		print("peer left %d" % id)


func _on_peer_packet(id: int, packet: PackedByteArray) -> void:
	print("bytes from %d: %s" % [id, packet.get_string_from_utf8()])


func _on_quit_timer() -> void:
	quitting = true
	peer.close()
	get_tree().quit(0)


# --- implemented by the server (peer 1) ---

@rpc("any_peer")
func join(_name: String) -> void:
	pass


@rpc("any_peer")
func say(_text: String) -> void:
	pass


@rpc("any_peer")
func move(_pos: Vector2) -> void:
	pass


@rpc("any_peer")
func echo(_value = PackedByteArray()) -> void:
	pass


# --- called by the server ---

@rpc("authority")
func welcome(your_id: int, players: Dictionary) -> void:
	print("welcome %d, players %s" % [your_id, players])
	say.rpc_id(1, "%s from %s" % [say_text, player_name])
	move.rpc_id(1, Vector2(randf_range(0, 100), randf_range(0, 100)))
	echo.rpc_id(1, {"k": [1, 2.5], "v": Vector3(1, 2, 3)})
	# send_bytes to peer 1 alone: the server sends the same bytes back.
	(multiplayer as SceneMultiplayer).send_bytes("ping".to_utf8_buffer(), 1)


@rpc("authority")
func announce(id: int, player: String) -> void:
	print("announce %d %s" % [id, player])


@rpc("authority")
func chat(from_id: int, text: String) -> void:
	print("chat %d: %s" % [from_id, text])


@rpc("authority")
func moved(id: int, pos: Vector2) -> void:
	print("moved %d %s" % [id, pos])


# An empty PackedByteArray travels as "no argument": hence the default.
@rpc("authority")
func echoed(value = PackedByteArray()) -> void:
	print("echoed %s" % [value])
